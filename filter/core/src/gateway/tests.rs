//! Table-driven unit tests of HTTPRoute / GRPCRoute compilation.
//! Matching, filters, rewrites, backends and precedence.
