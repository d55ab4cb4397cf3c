//! Simulated Triton APIs (VMAPI, PAPI, CNAPI, IMGAPI, accounts) over HTTP.

/// `sim triton ...`: not built yet.
pub fn main(args: &[String]) -> anyhow::Result<i32> {
    let _ = args;
    anyhow::bail!("sim triton is not implemented yet")
}
