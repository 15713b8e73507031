package worker

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the worker if the parent dies: a worker
// spinning in a module would not notice its stdin closing. Linux sends the
// signal when the thread that started the worker exits, and Go ends threads
// only for goroutines that exit while locked to one, which custos does not do.
func setDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
}
