module github.com/payfn/payfn

go 1.26
