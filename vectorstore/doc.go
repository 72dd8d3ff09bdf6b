// Package vectorstore is biomatch's search (engine.Index): PGVector searches
// PostgreSQL with pgvector (exact scan, or HNSW for large galleries) and
// keeps its HNSW indexes; Exact is the in-memory exact index (the gonum
// fallback and the fast path, with its kernels in vectorstore/kernel);
// Synced keeps an Exact current from PostgreSQL; Auto chooses between them.
// It writes nothing but indexes: persons and templates are written by
// postgres.Store, which announces each change on postgres.TemplatesChannel
// (search builds on storage: vectorstore imports postgres, never the reverse).
package vectorstore
