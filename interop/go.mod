module github.com/ecows/ecows/interop

go 1.24.0

require (
	github.com/coder/websocket v1.8.15
	github.com/ecows/ecows v0.0.0
	github.com/gorilla/websocket v1.5.3
)

replace github.com/ecows/ecows => ../
