//go:build !unix

package transport

import "syscall"

// rawReader returns nil: reading the descriptor directly is implemented on Unix only, so
// elsewhere a Conn keeps its read buffer while it waits.
func rawReader(*Conn) (syscall.RawConn, func(uintptr) bool) { return nil, nil }
