module github.com/ecows/ecows/interop

go 1.24.0

require (
	github.com/coder/websocket v1.8.15
	github.com/ecows/ecows v0.0.0
	github.com/gorilla/websocket v1.5.3
)

require (
	golang.org/x/net v0.50.0 // indirect
	golang.org/x/text v0.34.0 // indirect
)

replace github.com/ecows/ecows => ../
