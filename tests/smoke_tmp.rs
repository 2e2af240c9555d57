use clipstep::*;
#[test]
fn smoke() {
    let ctx = Context::new().unwrap();
    eprintln!("{}", ctx.describe());
    let mut set = ctx.param_set(&[TensorSpec::new("a", [5]), TensorSpec::new("b", [3000])]).unwrap();
    let g: Vec<f32> = (0..3005).map(|i| (i as f32 * 0.37).sin()).collect();
    set.upload_grads(&g).unwrap();
    let r = set.global_norm(Norm::L2).unwrap();
    let s = r.read_blocking().unwrap();
    let want = reference::global_norm(&[&g[..5], &g[5..]], Norm::L2);
    eprintln!("{s:?} want {want} tn {:?}", r.tensor_norms_blocking().unwrap());
    let r = set.clip_grad_norm(1.0, Norm::L2).unwrap();
    eprintln!("{:?}", r.read_blocking().unwrap());
    let back = set.download_grads().unwrap();
    eprintln!("{:?} {:?}", &back[..3], reference::global_norm(&[&back], Norm::L2));
}
