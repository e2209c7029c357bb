//! `waypoint`: the command-line entry point.
//! Subcommands: `explain` (show one decision).

fn main() {
    println!("waypoint: not yet");
}
