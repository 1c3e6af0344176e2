package singlefile

// Test helpers shared with the external tests (package singlefile_test).
var (
	ScriptUNetKey = scriptUNetKey
	DeclaredFile  = declaredFile
)
