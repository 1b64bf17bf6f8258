// Command kube-testplane runs a throwaway Kubernetes control plane for end-to-end tests:
// embedded etcd, kube-apiserver and a restricted kube-controller-manager, all in one
// process, all bound to 127.0.0.1.
//
// It prints exactly one line "READY {json}" on stdout once the apiserver answers /readyz
// (and, when the serviceaccount controller runs, once namespace "default" has its
// ServiceAccount). Everything else (klog, etcd's zap logger, our own messages) goes to stderr.
//
// It shuts down cleanly on SIGTERM/SIGINT, or when its stdin is a pipe that reaches EOF (so a
// parent that dies takes the control plane with it), and removes its temporary directory.
//
// Usage:
//
//	kube-testplane [flags] [-- extra kube-apiserver flags]
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // for timeZone support in CronJob, as upstream's main

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/component-base/cli/globalflag"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration, as upstream's main
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream's main
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream's main
	"k8s.io/component-base/version"
	apiapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apioptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
)

// defaultControllers is the kube-controller-manager subset we run: enough for ownerReference
// cascades, namespace deletion, the "default" ServiceAccount and kube-root-ca.crt in each
// namespace. No scheduler, no kubelet, no workload controllers.
const defaultControllers = "garbage-collector-controller,namespace-controller,serviceaccount-controller," +
	"serviceaccount-token-controller,root-ca-certificate-publisher-controller"

type config struct {
	kubeconfigOut    string
	port             int
	tmpRoot          string
	keep             bool
	controllers      string
	extraControllers string
	watchStdin       string
	readyTimeout     time.Duration
	shutdownTimeout  time.Duration
	verbosity        int
	serviceCIDR      string
	printVersion     bool
	apiserverArgs    []string
}

func parseFlags() (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("kube-testplane", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kube-testplane [flags] [-- extra kube-apiserver flags]\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.kubeconfigOut, "kubeconfig-out", "", "write the admin kubeconfig here (default: <data dir>/kubeconfig)")
	fs.IntVar(&c.port, "port", 0, "kube-apiserver secure port on 127.0.0.1 (0: a free port)")
	fs.StringVar(&c.tmpRoot, "tmp-root", "", "parent directory of the data directory (default: $TMPDIR)")
	fs.BoolVar(&c.keep, "keep", false, "keep the data directory on exit")
	fs.StringVar(&c.controllers, "controllers", defaultControllers, "kube-controller-manager controllers to run (empty: no controller manager)")
	fs.StringVar(&c.extraControllers, "extra-controllers", "", "more kube-controller-manager controllers, added to --controllers (e.g. deployment-controller,replicaset-controller,endpointslice-controller)")
	fs.StringVar(&c.watchStdin, "exit-on-stdin-close", "auto", "shut down when stdin reaches EOF: true, false, or auto (only when stdin is a pipe or socket)")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", 180*time.Second, "give up if not ready within this time")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "force exit if a graceful shutdown takes longer")
	fs.IntVar(&c.verbosity, "v", 0, "klog verbosity of kube-apiserver and kube-controller-manager")
	fs.StringVar(&c.serviceCIDR, "service-cluster-ip-range", "10.0.0.0/24", "kube-apiserver --service-cluster-ip-range")
	fs.BoolVar(&c.printVersion, "version", false, "print the Kubernetes version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	c.apiserverArgs = fs.Args()
	switch c.watchStdin {
	case "auto", "true", "false":
	default:
		return nil, fmt.Errorf("--exit-on-stdin-close must be true, false or auto, got %q", c.watchStdin)
	}
	if c.port < 0 || c.port > 65535 {
		return nil, fmt.Errorf("--port %d out of range", c.port)
	}
	return c, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kube-testplane: "+format+"\n", args...)
}

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		logf("%v", err)
		return 2
	}
	if cfg.printVersion {
		fmt.Println(version.Get().GitVersion)
		return 0
	}
	started := time.Now()

	// One root context: cancelled by the first SIGINT/SIGTERM or by stdin EOF.
	// A second signal exits at once.
	rootCtx, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	sigCh := make(chan os.Signal, 2)
	signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigCh
		logf("received %v, shutting down (send it again to exit at once)", s)
		stop(fmt.Errorf("signal %v", s))
		<-sigCh
		logf("second signal, exiting now")
		cleanup.run()
		os.Exit(1)
	}()
	if watchStdin(cfg.watchStdin) {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			logf("stdin closed, shutting down")
			stop(errors.New("stdin closed"))
		}()
	}

	dir, err := os.MkdirTemp(cfg.tmpRoot, "kube-testplane-")
	if err != nil {
		logf("creating data directory: %v", err)
		return 1
	}
	if !cfg.keep {
		cleanup.set(func() {
			if err := os.RemoveAll(dir); err != nil {
				logf("removing %s: %v", dir, err)
			}
		})
		defer cleanup.run()
	}
	if cfg.kubeconfigOut == "" {
		cfg.kubeconfigOut = filepath.Join(dir, "kubeconfig")
	}

	tp := &testplane{cfg: cfg, dir: dir}
	code := tp.run(rootCtx, started)
	return code
}

// cleanup removes the data directory exactly once, on the normal path or on a forced exit.
var cleanup onceFunc

type onceFunc struct {
	mu   sync.Mutex
	fn   func()
	done bool
}

func (o *onceFunc) set(fn func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fn = fn
}

func (o *onceFunc) run() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done || o.fn == nil {
		return
	}
	o.done = true
	o.fn()
}

// watchStdin decides whether stdin EOF means "parent is gone".
func watchStdin(mode string) bool {
	switch mode {
	case "true":
		return true
	case "false":
		return false
	}
	fi, err := os.Stdin.Stat()
	if err != nil {
		return false
	}
	m := fi.Mode()
	return m&os.ModeNamedPipe != 0 || m&os.ModeSocket != 0
}

type testplane struct {
	cfg *config
	dir string
	pki *pki

	etcd    *embed.Etcd
	etcdURL string

	apiListener net.Listener
	apiURL      string
}

type readyInfo struct {
	Kubeconfig    string   `json:"kubeconfig"`
	APIServer     string   `json:"apiserver"`
	Etcd          string   `json:"etcd"`
	PID           int      `json:"pid"`
	DataDir       string   `json:"dataDir"`
	Version       string   `json:"version"`
	CAFile        string   `json:"caFile"`
	ClientCAFile  string   `json:"clientCAFile"`
	Controllers   []string `json:"controllers"`
	StartupMillis int64    `json:"startupMillis"`
}

func (tp *testplane) run(rootCtx context.Context, started time.Time) int {
	var err error
	if tp.pki, err = newPKI(filepath.Join(tp.dir, "pki")); err != nil {
		logf("generating certificates: %v", err)
		return 1
	}
	if err := tp.startEtcd(); err != nil {
		logf("starting etcd: %v", err)
		return 1
	}
	defer tp.stopEtcd()

	// Bind the apiserver port ourselves and hand the listener over: no free-port race.
	tp.apiListener, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tp.cfg.port))
	if err != nil {
		logf("listening for kube-apiserver: %v", err)
		return 1
	}
	port := tp.apiListener.Addr().(*net.TCPAddr).Port
	tp.apiURL = fmt.Sprintf("https://127.0.0.1:%d", port)

	if err := tp.writeKubeconfig(tp.cfg.kubeconfigOut, "admin", tp.pki.adminCert, tp.pki.adminKey); err != nil {
		logf("writing kubeconfig: %v", err)
		_ = tp.apiListener.Close()
		return 1
	}
	kcmKubeconfig := filepath.Join(tp.dir, "kube-controller-manager.kubeconfig")
	if err := tp.writeKubeconfig(kcmKubeconfig, "kube-controller-manager", tp.pki.kcmCert, tp.pki.kcmKey); err != nil {
		logf("writing kubeconfig: %v", err)
		_ = tp.apiListener.Close()
		return 1
	}

	controllers := splitList(tp.cfg.controllers)
	for _, c := range splitList(tp.cfg.extraControllers) {
		if !slices.Contains(controllers, c) {
			controllers = append(controllers, c)
		}
	}
	runSAController := !slices.Contains(controllers, "-serviceaccount-controller") &&
		(slices.Contains(controllers, "serviceaccount-controller") || slices.Contains(controllers, "serviceaccount") ||
			slices.Contains(controllers, "*"))

	apiCtx, apiCancel := context.WithCancel(context.Background())
	defer apiCancel()
	apiDone := make(chan error, 1)
	if err := tp.startAPIServer(apiCtx, runSAController, apiDone); err != nil {
		logf("kube-apiserver: %v", err)
		_ = tp.apiListener.Close()
		return 1
	}

	failed := false
	kcmCtx, kcmCancel := context.WithCancel(context.Background())
	defer kcmCancel()
	var kcmDone chan error

	readyCtx, readyCancel := context.WithTimeout(rootCtx, tp.cfg.readyTimeout)
	err = tp.waitReady(readyCtx, apiDone, "/readyz", "/api/v1/namespaces/default")
	if err == nil && len(controllers) > 0 {
		kcmDone = make(chan error, 1)
		if err = startControllerManager(kcmCtx, kcmKubeconfig, tp.pki, controllers, kcmDone); err == nil && runSAController {
			err = tp.waitReady(readyCtx, mergeErr(apiDone, kcmDone), "/api/v1/namespaces/default/serviceaccounts/default")
		}
	}
	readyCancel()

	if err != nil {
		if rootCtx.Err() == nil {
			logf("not ready: %v", err)
			failed = true
		}
	} else {
		info := readyInfo{
			Kubeconfig:    tp.cfg.kubeconfigOut,
			APIServer:     tp.apiURL,
			Etcd:          tp.etcdURL,
			PID:           os.Getpid(),
			DataDir:       tp.dir,
			Version:       version.Get().GitVersion,
			CAFile:        tp.pki.servingCAFile,
			ClientCAFile:  tp.pki.clientCAFile,
			Controllers:   controllers,
			StartupMillis: time.Since(started).Milliseconds(),
		}
		line, _ := json.Marshal(info)
		if _, werr := fmt.Fprintf(os.Stdout, "READY %s\n", line); werr != nil {
			logf("writing READY line: %v", werr)
		}
		_ = os.Stdout.Sync()
		logf("ready in %v: %s", time.Since(started).Round(time.Millisecond), tp.apiURL)

		select {
		case <-rootCtx.Done():
			logf("shutdown requested: %v", context.Cause(rootCtx))
		case err := <-apiDone:
			logf("kube-apiserver exited: %v", err)
			apiDone <- err
			failed = true
		case err := <-kcmDone:
			logf("kube-controller-manager exited: %v", err)
			kcmDone <- err
			failed = true
		case err := <-tp.etcd.Err():
			logf("etcd failed: %v", err)
			failed = true
		}
	}

	// Orderly shutdown: controllers, then apiserver, then etcd (deferred).
	deadline := time.After(tp.cfg.shutdownTimeout)
	kcmCancel()
	if kcmDone != nil {
		select {
		case err := <-kcmDone:
			if err != nil && !errors.Is(err, context.Canceled) {
				logf("kube-controller-manager: %v", err)
			}
		case <-deadline:
			logf("kube-controller-manager did not stop in %v", tp.cfg.shutdownTimeout)
			return 1
		}
	}
	apiCancel()
	select {
	case err := <-apiDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			logf("kube-apiserver: %v", err)
		}
	case <-deadline:
		logf("kube-apiserver did not stop in %v", tp.cfg.shutdownTimeout)
		return 1
	}
	if failed {
		return 1
	}
	logf("stopped")
	return 0
}

func mergeErr(chans ...chan error) chan error {
	out := make(chan error, len(chans))
	for _, c := range chans {
		go func() {
			err := <-c
			c <- err // leave it for the main loop
			out <- err
		}()
	}
	return out
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------- etcd

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (tp *testplane) startEtcd() error {
	// Throwaway single member: no fsync, small WAL segments instead of 64 MB preallocation.
	wal.SegmentSizeBytes = 4 * 1024 * 1024
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		clientPort, err := freePort()
		if err != nil {
			return err
		}
		peerPort, err := freePort()
		if err != nil {
			return err
		}
		dataDir := filepath.Join(tp.dir, fmt.Sprintf("etcd-%d", attempt))
		ec := embed.NewConfig()
		ec.Name = "kube-testplane"
		ec.Dir = dataDir
		cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
		pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
		ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
		ec.UnsafeNoFsync = true
		ec.WatchProgressNotifyInterval = 5 * time.Second
		ec.Logger = "zap"
		ec.LogLevel = "error"
		ec.LogOutputs = []string{"stderr"}
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger())

		e, err := embed.StartEtcd(ec)
		if err != nil {
			lastErr = err
			_ = os.RemoveAll(dataDir)
			if isAddrInUse(err) {
				continue
			}
			return err
		}
		select {
		case <-e.Server.ReadyNotify():
			tp.etcd, tp.etcdURL = e, cu.String()
			return nil
		case err := <-e.Err():
			e.Close()
			return err
		case <-time.After(60 * time.Second):
			e.Server.Stop()
			e.Close()
			return errors.New("etcd not ready after 60s")
		}
	}
	return lastErr
}

func isAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// etcdLogLevel is raised before Close: etcd logs every listener it closes as an error.
var etcdLogLevel = zap.NewAtomicLevelAt(zap.ErrorLevel)

func etcdLogger() *zap.Logger {
	zc := zap.NewProductionConfig()
	zc.Level = etcdLogLevel
	zc.Sampling = nil
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	lg, err := zc.Build(zap.Fields(zap.String("component", "etcd")))
	if err != nil {
		return zap.NewNop()
	}
	return lg
}

func (tp *testplane) stopEtcd() {
	if tp.etcd == nil {
		return
	}
	etcdLogLevel.SetLevel(zap.FatalLevel)
	done := make(chan struct{})
	go func() {
		tp.etcd.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		logf("etcd did not stop in 10s")
	}
}

// ---------------------------------------------------------------------------- apiserver

func (tp *testplane) startAPIServer(ctx context.Context, serviceAccountAdmission bool, done chan<- error) error {
	s := apioptions.NewServerRunOptions()
	featureGate := s.GenericServerRunOptions.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)

	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	namedFlagSets := s.Flags()
	globalflag.AddGlobalFlags(namedFlagSets.FlagSet("global"), "kube-apiserver", logs.SkipLoggingConfigurationFlags())
	for _, f := range namedFlagSets.FlagSets {
		fs.AddFlagSet(f)
	}

	port := tp.apiListener.Addr().(*net.TCPAddr).Port
	p := tp.pki
	args := []string{
		"--etcd-servers=" + tp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + p.dir,
		"--tls-cert-file=" + p.servingCertFile,
		"--tls-private-key-file=" + p.servingKeyFile,
		"--client-ca-file=" + p.clientCAFile,
		"--service-account-issuer=" + tp.apiURL,
		"--service-account-key-file=" + p.saPubFile,
		"--service-account-signing-key-file=" + p.saKeyFile,
		"--service-cluster-ip-range=" + tp.cfg.serviceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		// No kube-proxy routes ClusterIPs here: webhooks, conversion webhooks and aggregated
		// APIs behind a Service are called at a ready endpoint of its EndpointSlices (pod IPs
		// the host reaches, e.g. on the e2e process kubelet's bridge).
		"--enable-aggregator-routing=true",
		// A node's kubelet API (logs, exec, port-forward) is reached at its InternalIP: test
		// nodes' hostnames are not in any DNS.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--kubelet-client-certificate=" + p.kubeletClientCertFile,
		"--kubelet-client-key=" + p.kubeletClientKeyFile,
		"--profiling=false",
		fmt.Sprintf("--v=%d", tp.cfg.verbosity),
	}
	if !serviceAccountAdmission {
		// Without the serviceaccount controller there is no "default" ServiceAccount, and the
		// ServiceAccount admission plugin would reject every Pod (envtest does the same).
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	args = append(args, tp.cfg.apiserverArgs...)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected kube-apiserver arguments %q", fs.Args())
	}
	s.SecureServing.Listener = tp.apiListener

	// What upstream's cobra command does in PersistentPreRunE and RunE, minus
	// SetupSignalContext: we own the context and the signals.
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	if err := logsapi.ValidateAndApply(s.Logs, featureGate); err != nil {
		return err
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	if mfg, ok := featureGate.(featuregate.MutableFeatureGate); ok {
		mfg.AddMetrics()
	}
	s.GenericServerRunOptions.ComponentGlobalsRegistry.AddMetrics()

	go func() {
		done <- apiapp.Run(ctx, completed)
	}()
	return nil
}

// waitReady polls the given paths with the admin client until each answers 200.
func (tp *testplane) waitReady(ctx context.Context, failed <-chan error, paths ...string) error {
	tlsCfg, err := tp.pki.adminTLSConfig()
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: nil},
	}
	defer client.CloseIdleConnections()
	var last string
	for _, path := range paths {
		for {
			resp, err := client.Get(tp.apiURL + path)
			if err == nil {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				last = fmt.Sprintf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
			} else {
				last = fmt.Sprintf("GET %s: %v", path, err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last: %s)", context.Cause(ctx), last)
			case err := <-failed:
				return fmt.Errorf("component exited before ready: %v", err)
			case err := <-tp.etcd.Err():
				return fmt.Errorf("etcd failed: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func (tp *testplane) writeKubeconfig(path, user string, certPEM, keyPEM []byte) error {
	kc := clientcmdapi.NewConfig()
	cluster := clientcmdapi.NewCluster()
	cluster.Server = tp.apiURL
	cluster.CertificateAuthorityData = tp.pki.servingCAPEM
	kc.Clusters["kube-testplane"] = cluster
	ai := clientcmdapi.NewAuthInfo()
	ai.ClientCertificateData = certPEM
	ai.ClientKeyData = keyPEM
	kc.AuthInfos[user] = ai
	kctx := clientcmdapi.NewContext()
	kctx.Cluster = "kube-testplane"
	kctx.AuthInfo = user
	kctx.Namespace = "default"
	kc.Contexts["kube-testplane"] = kctx
	kc.CurrentContext = "kube-testplane"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Atomic: readers never see a half-written kubeconfig.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ------------------------------------------------------------------ controller manager

func startControllerManager(ctx context.Context, kubeconfig string, p *pki, controllers []string, done chan<- error) error {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	namedFlagSets := s.Flags(kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	s.ParsedFlags = &namedFlagSets
	for _, f := range namedFlagSets.FlagSets {
		fs.AddFlagSet(f)
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		"--secure-port=0", // no HTTPS endpoint, no delegated authn/authz
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + p.saKeyFile,
		"--root-ca-file=" + p.servingCAFile,
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--controller-shutdown-timeout=5s",
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The component registry and logging were set up by the apiserver (same process).
	c, err := s.Config(ctx, kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases())
	if err != nil {
		return err
	}
	go func() {
		done <- kcmapp.Run(ctx, c.Complete())
	}()
	return nil
}

// tlsConfigFor builds a client TLS config trusting caPEM and presenting cert/key.
func tlsConfigFor(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	pool, err := certPool(caPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}
