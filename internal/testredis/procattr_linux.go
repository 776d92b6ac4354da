package testredis

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the server when the test process dies, so a test
// binary killed by its timeout leaves no redis-server behind (t.Cleanup
// does not run then).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
