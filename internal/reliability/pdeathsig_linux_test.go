package reliability

import "syscall"

func init() {
	setPdeathsig = func(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
}
