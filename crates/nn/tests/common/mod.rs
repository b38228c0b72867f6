//! Helpers shared by the network tests.

use burn::module::Module;
use burn::tensor::Tensor;

/// Every float parameter of `net`, found by the module's own visitor: how many there are, and
/// the ids of those whose gradient in `grads` is absent or all zero.
#[allow(dead_code)] // not every test file that shares these helpers uses this one
pub fn nonzero_grads<M: Module>(net: &M, grads: &burn::tensor::Gradients) -> (usize, Vec<String>) {
    struct Visit<'a> {
        grads: &'a burn::tensor::Gradients,
        checked: usize,
        missing: Vec<String>,
    }
    impl burn::module::ModuleVisitor for Visit<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.checked += 1;
            let ok = param.val().grad(self.grads).is_some_and(|g| {
                g.into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .unwrap()
                    .iter()
                    .any(|v| *v != 0.0)
            });
            if !ok {
                self.missing.push(format!("{:?}", param.id));
            }
        }
    }
    let mut v = Visit {
        grads,
        checked: 0,
        missing: Vec::new(),
    };
    net.visit(&mut v);
    (v.checked, v.missing)
}

/// Every float parameter of `net`, in the module's visiting order, flattened.
#[allow(dead_code)] // not every test file that shares these helpers uses this one
pub fn weights<M: Module>(net: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let v = param.val().into_data().convert::<f32>();
            self.0.extend(v.try_into_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    net.visit(&mut c);
    c.0
}

/// burn draws every random number (seeded or not, and the lazy initial weights) from one
/// generator per process, and the test harness runs a file's tests on several threads: a test
/// that seeds it would see another test's draws interleaved with its own, and an unlucky
/// interleaving once left one HGT parameter without a gradient. Every test of a file that draws
/// holds this lock for its whole body, so each sees the sequence its own seed gives.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
