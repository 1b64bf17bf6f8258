package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the throwaway certificate material of one control plane. Everything is ECDSA P-256,
// keys are PKCS#8 PEM (loadable by Go, rustls and OpenSSL alike), valid for 7 days.
type pki struct {
	dir string

	servingCAPEM    []byte
	servingCAFile   string
	servingCertFile string
	servingKeyFile  string

	clientCAPEM  []byte
	clientCAFile string
	adminCert    []byte
	adminKey     []byte
	kcmCert      []byte
	kcmKey       []byte

	// The apiserver's identity towards kubelets (logs, exec, port-forward), as kubeadm's
	// apiserver-kubelet-client: kubelets trust clientCAFile and authorize it by webhook.
	kubeletClientCertFile string
	kubeletClientKeyFile  string

	saKeyFile string // private key: --service-account-signing-key-file, KCM token controller
	saPubFile string // public key: --service-account-key-file
}

type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

const validity = 7 * 24 * time.Hour

func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{dir: dir}

	servingCA, err := newCA("kube-testplane-serving-ca")
	if err != nil {
		return nil, err
	}
	// The apiserver is reached as 127.0.0.1/localhost from the host and, by name, as the
	// in-cluster "kubernetes" Service (first IP of the default service range).
	serving, err := newLeaf(servingCA, "kube-apiserver", nil,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 0, 0, 1)},
		x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	clientCA, err := newCA("kube-testplane-client-ca")
	if err != nil {
		return nil, err
	}
	admin, err := newLeaf(clientCA, "admin", []string{"system:masters"}, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	kcm, err := newLeaf(clientCA, "system:kube-controller-manager", []string{"system:masters"}, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	kubeletClient, err := newLeaf(clientCA, "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}

	p.servingCAPEM = servingCA.pem
	p.clientCAPEM = clientCA.pem
	p.adminCert, p.adminKey = admin.pem, mustKeyPEM(admin.key)
	p.kcmCert, p.kcmKey = kcm.pem, mustKeyPEM(kcm.key)

	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	files := []struct {
		field *string
		name  string
		data  []byte
	}{
		{&p.servingCAFile, "serving-ca.crt", servingCA.pem},
		{&p.servingCertFile, "apiserver.crt", serving.pem},
		{&p.servingKeyFile, "apiserver.key", mustKeyPEM(serving.key)},
		{&p.clientCAFile, "client-ca.crt", clientCA.pem},
		{&p.saKeyFile, "sa.key", mustKeyPEM(saKey)},
		{&p.saPubFile, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})},
		{new(string), "admin.crt", admin.pem},
		{new(string), "admin.key", p.adminKey},
		{&p.kubeletClientCertFile, "kubelet-client.crt", kubeletClient.pem},
		{&p.kubeletClientKeyFile, "kubelet-client.key", mustKeyPEM(kubeletClient.key)},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, f.data, 0o600); err != nil {
			return nil, err
		}
		*f.field = path
	}
	return p, nil
}

func (p *pki) adminTLSConfig() (*tls.Config, error) {
	return tlsConfigFor(p.servingCAPEM, p.adminCert, p.adminKey)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(cn string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func newLeaf(ca *keyPair, cn string, orgs, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func mustKeyPEM(key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		// Only fails for unsupported key types; we only make ECDSA P-256 keys.
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPool(caPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in PEM")
	}
	return pool, nil
}
