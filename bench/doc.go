// Package bench holds side-by-side benchmarks of ecows against rival WebSocket libraries,
// each measuring the same operation the same way so that the numbers compare. It is a
// separate module, kept out of the main module's go.mod, so that a user who imports ecows
// never downloads the rivals; run it with
//
//	cd bench && go test -run XXX -bench . -benchmem
package bench
