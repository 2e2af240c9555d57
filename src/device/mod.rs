//! The device layer: adapter and device selection with its limits and faults, and the
//! pipeline cache (`context`); bind groups, dispatches, transfers and in-stream writes
//! (`gpu`), with their reused upload buffers (`uploads`); what a device's arithmetic and
//! subgroups do (`probe`); memory budgets (`memory`). Nothing here knows parameter sets or
//! optimizers.

pub(crate) mod context;
pub(crate) mod gpu;
pub(crate) mod memory;
pub(crate) mod probe;
pub(crate) mod uploads;
