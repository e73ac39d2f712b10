//go:build !linux

package main

import "os/exec"

// dieWithParent does nothing outside Linux: only the deferred stop and the
// signal handler of TestMain end redis-server there.
func dieWithParent(*exec.Cmd) {}
