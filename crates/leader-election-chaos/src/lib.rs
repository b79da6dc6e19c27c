//! The chaos harness's library: the shared fenced-write log and its checker.
