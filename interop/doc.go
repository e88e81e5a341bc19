// Package interop tests ecows against independently written WebSocket peers over 127.0.0.1, in
// both directions: gorilla/websocket and coder/websocket (in process), the Node.js ws package
// and Python's websockets (as child processes running the scripts in peers/), and headless
// Chromium (loading a page from an ecows-backed server). It is a module of its own so that
// users of ecows never download the peers. The code is all in _test.go files; see README.md.
package interop
