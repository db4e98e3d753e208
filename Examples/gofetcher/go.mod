module example.com/athens/gofetcher

go 1.19
