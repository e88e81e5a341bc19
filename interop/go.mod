module github.com/ecows/ecows/interop

go 1.25

require (
	github.com/coder/websocket v1.8.15
	github.com/ecows/ecows v0.0.0
	github.com/gorilla/websocket v1.5.3
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	golang.org/x/net v0.50.0 // indirect
	golang.org/x/text v0.34.0 // indirect
)

replace github.com/ecows/ecows => ../
