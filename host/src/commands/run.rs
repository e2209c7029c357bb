//! `waypoint run`: the standalone HBONE waypoint (stub until the proxy lands).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
