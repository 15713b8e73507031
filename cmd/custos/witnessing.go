package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/custos/custos/internal/auditlog"
	"github.com/custos/custos/internal/config"
	"github.com/custos/custos/internal/witness"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Witnessing retries: the first wait after a failure, the longest, and how
// long one witness request may take.
const (
	witnessMinBackoff = time.Second
	witnessMaxBackoff = time.Minute
	witnessTimeout    = 10 * time.Second
)

// witnessing sends each new checkpoint of the audit log to the configured
// witnesses (C2SP tlog-witness) and hands the log the cosignatures that
// verify with each witness's key, which the log then serves with the
// checkpoint. One goroutine polls the log's checkpoint every checkpoint
// interval and offers a new one to every witness at once, so that they
// cosign the same checkpoint; one goroutine per witness submits it, with a
// consistency proof from the size that witness last cosigned. A witness
// that fails is retried with backoff, from the newest checkpoint by then.
// Nothing here blocks or fails an append.
type witnessing struct {
	log      *auditlog.Log
	peers    []*peer
	interval time.Duration
	logger   *slog.Logger

	mu   sync.Mutex
	cp   []byte             // the newest checkpoint any witness cosigned
	size uint64             // its size
	sigs map[*peer][][]byte // the verified cosignatures of cp

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// peer is one witness. Its fields past next are used by its goroutine only.
type peer struct {
	name     string
	client   *witness.Client
	verifier note.Verifier // cosignature/v1
	next     chan []byte   // the newest checkpoint to submit; one slot

	size     uint64 // the size the witness holds, as far as custos knows
	cosigned []byte // the last checkpoint it cosigned validly
}

// newWitnessing reads the witnesses of the config. It fails on a key that
// is not a cosignature/v1 verifier key, so a deployment with a witness it
// cannot check refuses to start.
func newWitnessing(cfg *config.Config, l *auditlog.Log, logger *slog.Logger) (*witnessing, error) {
	w := &witnessing{log: l, interval: time.Duration(cfg.Audit.CheckpointInterval), logger: logger}
	hc := &http.Client{Timeout: witnessTimeout}
	for _, c := range cfg.Audit.Witnesses {
		k, err := readKeyFile(cfg.Path(c.Key))
		if err != nil {
			return nil, fmt.Errorf("couldn't read the key of witness %s: %w", c.Name, err)
		}
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, fmt.Errorf("the key of witness %s is not a cosignature/v1 verifier key (custos witness keygen writes one as witness.vkey): %w", c.Name, err)
		}
		w.peers = append(w.peers, &peer{
			name: c.Name, client: &witness.Client{URL: c.URL, HTTP: hc},
			verifier: v, next: make(chan []byte, 1),
		})
	}
	return w, nil
}

// Start starts the loops, if any witness is configured.
func (w *witnessing) Start() {
	if w == nil || len(w.peers) == 0 || w.stop != nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	w.wg.Go(func() { w.poll(ctx) })
	for _, p := range w.peers {
		w.wg.Go(func() { w.run(ctx, p) })
	}
}

// Stop stops the loops and waits for them, abandoning requests under way.
func (w *witnessing) Stop() {
	if w == nil || w.stop == nil {
		return
	}
	w.stop()
	w.wg.Wait()
}

// poll offers every new checkpoint to every witness.
func (w *witnessing) poll(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var last []byte
	for {
		cp, err := w.log.Checkpoint(ctx)
		switch {
		case err == nil && !bytes.Equal(cp, last):
			last = cp
			for _, p := range w.peers {
				p.offer(cp)
			}
		case err != nil && !errors.Is(err, fs.ErrNotExist) && ctx.Err() == nil:
			w.logger.Warn("couldn't read the audit checkpoint for the witnesses", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// offer replaces the checkpoint waiting for p, if any, with cp. Only poll
// calls it, so the slot is free once drained.
func (p *peer) offer(cp []byte) {
	select {
	case <-p.next:
	default:
	}
	p.next <- cp
}

// run submits the checkpoints offered to p, retrying a failure with
// backoff until it succeeds or a newer checkpoint replaces it.
func (w *witnessing) run(ctx context.Context, p *peer) {
	var cp []byte
	var backoff time.Duration
	for {
		if cp == nil {
			select {
			case <-ctx.Done():
				return
			case cp = <-p.next:
			}
		}
		err := w.submit(ctx, p, cp)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if backoff > 0 {
				w.logger.Info("witness cosigns the audit log again", "witness", p.name, "size", p.size)
			}
			cp, backoff = nil, 0
			continue
		}
		backoff = min(max(2*backoff, witnessMinBackoff), witnessMaxBackoff)
		w.logger.Warn("witness did not cosign the audit checkpoint", "witness", p.name, "url", p.client.URL, "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		select {
		case newer := <-p.next:
			cp = newer
		default:
		}
	}
}

// submit asks p to cosign cp and collects the cosignatures that verify.
// When the witness holds another size than custos thought (custos or the
// witness restarted, or a request was lost), it retries once from that
// size.
func (w *witnessing) submit(ctx context.Context, p *peer, cp []byte) error {
	if bytes.Equal(cp, p.cosigned) {
		return nil
	}
	size, err := auditlog.CheckpointSize(cp)
	if err != nil {
		return err
	}
	sigs, err := w.add(ctx, p, p.size, size, cp)
	if c, ok := errors.AsType[*witness.ConflictError](err); ok {
		if c.Size > size {
			return fmt.Errorf("the witness holds a checkpoint of size %d, larger than the log's %d", c.Size, size)
		}
		sigs, err = w.add(ctx, p, c.Size, size, cp)
	}
	if err != nil {
		return err
	}
	p.size = size
	valid, err := verifyCosignatures(cp, sigs, p.verifier)
	if err != nil {
		return err
	}
	p.cosigned = cp
	w.collect(p, cp, size, valid)
	return nil
}

// add sends cp to p with a consistency proof from size from.
func (w *witnessing) add(ctx context.Context, p *peer, from, to uint64, cp []byte) ([][]byte, error) {
	proof, err := w.log.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return p.client.AddCheckpoint(ctx, from, proof, cp)
}

// collect records the cosignatures of p on cp and hands the log all those
// collected for cp. Cosignatures of a checkpoint older than one another
// witness already cosigned are dropped: the log serves one checkpoint.
func (w *witnessing) collect(p *peer, cp []byte, size uint64, sigs [][]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.cp == nil || size > w.size:
		w.cp, w.size, w.sigs = cp, size, make(map[*peer][][]byte)
	case !bytes.Equal(cp, w.cp):
		return
	}
	w.sigs[p] = sigs
	var all [][]byte
	for _, q := range w.peers {
		all = append(all, w.sigs[q]...)
	}
	if err := w.log.SetCosignatures(cp, all); err != nil {
		w.logger.Error("couldn't attach cosignatures to the audit checkpoint", "err", err)
	}
}

// verifyCosignatures returns the signature lines among sigs that verify as
// v's cosignatures of cp, and an error if there is none or one of v's does
// not verify.
func verifyCosignatures(cp []byte, sigs [][]byte, v note.Verifier) ([][]byte, error) {
	n, err := note.Open(witness.AttachCosignatures(cp, sigs...), note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("the witness's cosignature does not verify with its configured key: %w", err)
	}
	lines := make([][]byte, len(n.Sigs))
	for i, s := range n.Sigs {
		lines[i] = fmt.Appendf(nil, "\u2014 %s %s\n", s.Name, s.Base64)
	}
	return lines, nil
}
