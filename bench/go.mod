module github.com/ecows/ecows/bench

go 1.24.0

require github.com/ecows/ecows v0.0.0

require github.com/gorilla/websocket v1.5.3

replace github.com/ecows/ecows => ../
