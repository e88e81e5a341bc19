//go:build !amd64 || purego

package frame

// maskAsm reports false: there is no assembly for this platform, or the purego build tag
// asked for none, so Mask masks every payload in Go.
func maskAsm([]byte, uint32) bool { return false }
