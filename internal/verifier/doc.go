// Package verifier is the monitor's side of custos' transparency log: it
// checks the log over HTTP without trusting the server that serves it.
//
// The log is a C2SP tlog-tiles log (RFC 6962 hashing) whose checkpoints are
// C2SP signed notes. [Verify] guarantees, when it returns no error, that:
//
//   - the checkpoint is signed by the log key given in [Config] and names
//     the expected origin, and carries cosignatures (C2SP cosignature/v1)
//     from at least the quorum of the configured witnesses;
//   - if a state from an earlier run is given, the new checkpoint is no
//     smaller than the old one and a consistency proof, computed from the
//     served hash tiles, proves the new tree extends the old one;
//   - every entry from the old size to the new one was downloaded, hashed
//     and folded into the compact range kept in the state, and the resulting
//     root equals the checkpoint's root;
//   - every such entry is in the canonical encoding of custos.AuditEntry.
//
// It trusts only the log's verifier key, the witnesses' keys and the state
// it was handed (whose checkpoint signature it checks again). Hash tiles and
// entry bundles are untrusted input: tiles are only used to build proofs
// that are then verified against signed roots, and to point at the entry
// that changed once a mismatch is already certain. Every response is
// bounded in size.
//
// [Prove] builds and checks an inclusion proof for one entry, so a client
// holding an audit index can check its release is on the log; [Report]
// summarizes verified entries for the monitor.
package verifier
