//! Tests of the policy core through the shared scenario suite and the bookinfo canary
//! (one test binary).

mod bookinfo_split;
mod scenarios;
