module github.com/ecows/ecows

go 1.24
