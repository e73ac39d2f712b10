package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill cmd when the test process dies, however
// it dies (a panic, a test timeout, SIGKILL), so no redis-server outlives it.
// Pdeathsig follows the thread that started cmd; the Go runtime keeps its
// threads unless a goroutine exits while locked to one, which no test does.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
