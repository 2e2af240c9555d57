// reduce_to_first where the device has subgroups of one fixed size SUBGROUP_SIZE (a power
// of two ≥ 8, declared before this file) over consecutive invocations: src/device/probe.rs checks
// both when the Context is made, and src/kernels/shaders.rs appends this file only then.
//   level 1: every subgroup folds its lanes (subgroupAdd, subgroupMax for L∞, subgroupOr
//            for the flags): one value per SUBGROUP_SIZE lanes of a run;
//   level 2: the run's first subgroup folds those, each lane `per` of them in order, then
//            the subgroup op again: the run's total in its first lane.
// A run narrower than a subgroup keeps the workgroup-memory fold (reduce_to_first_shared).
// The subgroup ops' order is the hardware's, fixed for a device whose subgroup size is
// fixed: identical bits every run (not the same bits as the shared fold's order).
// On lavapipe (8-wide subgroups) the first level is one vector reduction per SIMD batch
// instead of a loop of workgroup loads: 2-4% off the norm at 16M and 64M (10.0-10.3 against
// 10.4-10.5 ms, 39.2-39.4 against 40.2-40.3 ms; its loads, not its fold, are what is left).

var<workgroup> subgroup_totals: array<vec2<u32>, WORKGROUP_SIZE / SUBGROUP_SIZE>;

fn subgroup_combine(x: f32) -> f32 {
    if NORM_KIND == NORM_INF {
        return subgroupMax(x);
    }
    return subgroupAdd(x);
}

fn reduce_to_first(lid: u32, part: Partial, width: u32) -> Partial {
    // Constant-false where no run is narrower than a subgroup (lavapipe: 8 = SMALL_LANES),
    // so the compiler drops the shared fold: a CPU driver runs both sides of a branch it
    // cannot prove uniform.
    if SUBGROUP_SIZE > SMALL_LANES && width < SUBGROUP_SIZE {
        return reduce_to_first_shared(lid, part, width);
    }
    let value = subgroup_combine(part.value);
    let flags = subgroupOr(part.flags);
    if width == SUBGROUP_SIZE {
        return Partial(value, flags);
    }
    if lid % SUBGROUP_SIZE == 0u {
        subgroup_totals[lid / SUBGROUP_SIZE] = vec2<u32>(bitcast<u32>(value), flags);
    }
    workgroupBarrier();
    let lane = lid & (width - 1u);
    // The run's subgroup totals, and how many of them each lane of its first subgroup folds
    // (at most WORKGROUP_SIZE / SUBGROUP_SIZE² ≤ 4).
    let count = width / SUBGROUP_SIZE;
    let per = max(1u, count / SUBGROUP_SIZE);
    var v = 0.0;
    var f = 0u;
    if lane * per < count {
        let at = (lid - lane) / SUBGROUP_SIZE + lane * per;
        let first = subgroup_totals[at];
        v = bitcast<f32>(first.x);
        f = first.y;
        for (var q = 1u; q < per; q++) {
            let t = subgroup_totals[at + q];
            v = combine(v, bitcast<f32>(t.x));
            f |= t.y;
        }
    }
    return Partial(subgroup_combine(v), subgroupOr(f));
}
