//go:build unix

package interop

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// setProcessGroup puts the child in a process group of its own, so that cleanup can kill it
// with everything it started (Chromium's helpers, a shell's children).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup kills the child's process group and waits (up to 5 s) until none of its
// processes is left; a group already gone is fine. The leader itself is reaped by cmd.Wait.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if members(pgid) == 0 {
			return
		}
	}
}

// members counts the live processes of group pgid other than its unreaped leader, from /proc
// where there is one; elsewhere it trusts the kill.
func members(pgid int) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			n++
		}
	}
	return n
}
