//! Gateway API HTTPRoute and GRPCRoute compiled into the shared route model, ordered by
//! the Gateway API precedence rules.
