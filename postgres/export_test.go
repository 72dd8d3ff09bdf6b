package postgres

// LockPendingEnrollsSQL is lockPendingEnrollsSQL, for the plan test.
const LockPendingEnrollsSQL = lockPendingEnrollsSQL
