module github.com/tgate-web/tgate

go 1.26
