//go:build !linux

package worker

import "os/exec"

// setDeathSignal does nothing here: only Linux can tie a child's life to its
// parent's. A worker orphaned while it runs a module spins until the module
// ends; an idle one exits when its stdin closes.
func setDeathSignal(*exec.Cmd) {}
