package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/custos/custos"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/gateway"
	"github.com/custos/custos/internal/identity"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const serveUse = "custos serve --config DIR/custos.yaml [--listen 127.0.0.1:8080]"

func (e *env) serve(ctx context.Context, args []string) error {
	fs := e.flags("serve", serveUse)
	cfgPath := fs.String("config", "", "the deployment's custos.yaml")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return errUsage
	}
	// Listen first: a start that cannot listen must not touch the
	// deployment, whose audit log a running instance may be writing.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w (pick another address with --listen)", err)
	}
	defer ln.Close()
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	// The certificate too is checked before the deployment is opened.
	if cfg.TLS.Cert != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	d, err := openDeployment(ctx, cfg, e.log)
	if err != nil {
		return err
	}
	defer d.Close()
	return e.run(ctx, d, ln, nil)
}

// tlsConfig returns the server's TLS configuration: TLS 1.2 at least, and
// with a client CA, client certificates verified against it when given.
func tlsConfig(cfg *config.Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.Path(cfg.TLS.Cert), cfg.Path(cfg.TLS.Key))
	if err != nil {
		return nil, fmt.Errorf("couldn't load TLS certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if cfg.TLS.ClientCA != "" {
		pem, err := os.ReadFile(cfg.Path(cfg.TLS.ClientCA))
		if err != nil {
			return nil, fmt.Errorf("couldn't read tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca holds no PEM certificate")
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// run serves d on ln until ctx ends. On SIGHUP it compares the rules on
// disk with the signed ones and refuses an unsigned change. ready,
// if not nil, is called once the server accepts requests.
func (e *env) run(ctx context.Context, d *deployment, ln net.Listener, ready func()) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custos_audit_entries", Help: "Entries on the audit log.",
	}, func() float64 { return float64(d.log.Size()) }))
	for _, a := range []custos.Action{custos.ActionReadClear, custos.ActionReadToken, custos.ActionReadMasked, custos.ActionWrite, custos.ActionDetokenize, ""} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "custos_key_unwraps_total",
			Help:        "Data keys unwrapped, by the action stated as the reason (empty: custodial work such as rotation).",
			ConstLabels: prometheus.Labels{"action": string(a)},
		}, func() float64 { return float64(d.keyring.Unwraps()[a]) }))
	}
	gw := gateway.New(gateway.Config{
		Custody:        d.custody,
		Verifier:       d.verifier,
		Logger:         e.log,
		Registry:       reg,
		MaxBodyBytes:   d.cfg.Limits.MaxBodyBytes,
		MaxInFlight:    d.cfg.Limits.MaxInFlight,
		RequestTimeout: time.Duration(d.cfg.Limits.RequestTimeoutMS) * time.Millisecond,
		CertPrincipal:  certPrincipal(d.cfg),
		Log:            d.log,
		Ready: func(ctx context.Context) error {
			if err := d.log.Err(); err != nil {
				return err
			}
			_, err := d.store.Subject(ctx, "custos-readiness-probe")
			if err != nil && !errors.Is(err, custos.ErrNotFound) {
				return err
			}
			return nil
		},
	})
	defer gw.Close()
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	d.shredder.Start()
	d.witnesses.Start()
	defer d.witnesses.Stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := d.reload(context.Background()); err != nil {
				e.log.Error("rules on disk refused", "err", err)
				continue
			}
			e.log.Info("rules on disk are the signed ones", "policy", d.policy.Version())
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	e.log.Info("custos serving", "addr", ln.Addr().String(), "jurisdiction", d.cfg.Jurisdiction, "policy", d.policy.Version(), "store", d.store.Location())
	if ready != nil {
		ready()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// certPrincipal returns how client certificates become principals, or nil
// when the deployment takes none.
func certPrincipal(cfg *config.Config) func(*x509.Certificate) (custos.Principal, error) {
	if cfg.TLS.ClientCA == "" {
		return nil
	}
	return func(c *x509.Certificate) (custos.Principal, error) {
		return identity.PrincipalFromCert(c, cfg.Identity.Orgs)
	}
}
