// Package migrations holds the database schema as forward-only SQL files,
// embedded in the binary and applied with goose.
package migrations

import "embed"

// FS holds the *.sql migrations, applied in name order.
//
//go:embed *.sql
var FS embed.FS
