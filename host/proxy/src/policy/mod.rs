//! The policy adapter: config compiled into a [`compiled::Policy`], a CONNECT destination
//! resolved in it (`destination`), and each request's decision turned into a `plan`.
//!
//! Layers, lowest first (each file uses only those before it): `options`, `target` (endpoints
//! as upstream targets), `ext_authz_call`, `plan` (types), `compiled`, `destination`, `decide`.

pub mod compiled;
pub mod decide;
pub mod destination;
pub mod ext_authz_call;
pub mod options;
pub mod plan;
pub mod target;
