// Command coredns is CoreDNS with only the plugins cluster DNS needs on the test node:
// the kubernetes plugin serves Services and pods of cluster.local; nothing is forwarded off
// the machine. This is CoreDNS's documented way to build a custom plugin set.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order plugins run in (a subset of CoreDNS's plugin.cfg, in its order).
var directives = []string{"bind", "errors", "health", "ready", "kubernetes", "cache", "loop"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
