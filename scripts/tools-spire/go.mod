module verdict.local/tools-spire

go 1.26
