//! The declaration of a rule: [`rule!`] turns one table (the config's fields, its defaults,
//! the fields PyTorch requires ≥ 0, the state slots, the examples, the optimizer's name)
//! into the config struct, its `Default`, its checks, its
//! [`RuleDeclaration`](crate::optim::RuleDeclaration) and its optimizer type
//! ([`optimizer!`]); [`rule_kernel!`] declares its shader and group-table row. A rule's file
//! then holds only what is the rule's own.

/// Declares a rule's config and optimizer type:
///
/// ```text
/// rule! {
///     /// docs of the config (the rule's formula)
///     pub struct AdamaxConfig = "Adamax" {
///         /// docs of the field
///         pub lr: f64,
///         …
///     }
///     default: { lr: 2e-3, betas: (0.9, 0.999), … },     // PyTorch's signature
///     non_negative: [lr, eps = "epsilon value"],         // PyTorch's name, if not the field's
///     states: ["exp_avg", "exp_inf"],
///     examples: [{}, { lr: 1e-2, maximize: true }],      // each over `Default`
///     /// docs of the optimizer type
///     optimizer: Adamax,
/// }
/// ```
///
/// gives `pub struct AdamaxConfig` (Clone, Copy, Debug, PartialEq, serde; its docs end with
/// the default), its `Default`, its `FieldChecks` (each `non_negative` field finite and ≥ 0,
/// in order: the engine `Rule::validate`'s default), its `RuleDeclaration` (`NAME`, `STATES`,
/// `examples`, `Optimizer`) and `pub struct Adamax`. The file adds its `RuleConfig` (the
/// reference hook), its engine `Rule` (further checks, shape bits) and its kernel
/// ([`rule_kernel!`]).
macro_rules! rule {
    (
        $(#[$doc:meta])*
        pub struct $config:ident = $name:literal $fields:tt
        default: {$($dfield:ident : $dvalue:expr),* $(,)?},
        non_negative: [$($checked:ident $(= $torch_name:literal)?),* $(,)?],
        states: [$($state:literal),* $(,)?],
        examples: [$({$($efield:ident : $evalue:expr),* $(,)?}),+ $(,)?],
        $(#[$odoc:meta])*
        optimizer: $opt:ident,
    ) => {
        $(#[$doc])*
        ///
        #[doc = concat!("Default: `", stringify!($($dfield: $dvalue),*), "`.")]
        #[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $config $fields

        impl Default for $config {
            fn default() -> Self {
                $config { $($dfield: $dvalue),* }
            }
        }

        impl crate::optim::declare::FieldChecks for $config {
            fn check_fields(&self) -> crate::error::Result<()> {
                $(crate::optim::check_non_negative(
                    $name,
                    crate::optim::declare::rule!(@torch_name $checked $($torch_name)?),
                    self.$checked,
                )?;)*
                Ok(())
            }
        }

        impl crate::optim::RuleDeclaration for $config {
            const NAME: &'static str = $name;
            const STATES: &'static [&'static str] = &[$($state),*];
            // An example may set every field.
            #[allow(clippy::needless_update)]
            fn examples() -> Vec<Self> {
                vec![$($config { $($efield: $evalue,)* ..Default::default() }),+]
            }
            type Optimizer = $opt;
            fn optimizer(
                params: &crate::storage::param_set::ParamSet,
                groups: Vec<crate::optim::ParamGroup<$config>>,
            ) -> crate::error::Result<$opt> {
                $opt::with_groups(params, groups)
            }
        }

        crate::optim::optimizer! {
            $(#[$odoc])*
            $opt($config)
        }
    };
    (@torch_name $field:ident $name:literal) => {
        $name
    };
    (@torch_name $field:ident) => {
        stringify!($field)
    };
}
pub(crate) use rule;

/// The checks a rule's declaration gives its config ([`rule!`]'s `non_negative`).
pub(crate) trait FieldChecks {
    /// Each declared field finite and ≥ 0, in order ([`crate::Error::InvalidHyperparameter`]
    /// naming the first that is not, as PyTorch names it).
    fn check_fields(&self) -> crate::error::Result<()>;
}

/// Declares a rule's shader and its group table's row, computed from each config:
///
/// ```text
/// rule_kernel! {
///     /// docs of the row
///     "adamax" for [AdamaxConfig] as c, uniform AdamaxUniform = "Adamax" {
///         /// docs of the field (a WGSL comment too)
///         lr: f32 = c.lr as f32,
///         …
///     }
/// }
/// ```
///
/// gives `static SHADER` (`shaders/rules/adamax.wgsl`; `"lamb" with trust` adds
/// `lamb_table.wgsl` and `lamb_trust.wgsl`; `"adamw8bit" with q8` keeps 8-bit states), with the first config's
/// [`RuleDeclaration::STATES`](crate::optim::RuleDeclaration::STATES) as its state slots;
/// the row `AdamaxUniform` (a [`crate::kernels::abi::shared_struct!`], the WGSL `struct
/// Adamax` generated from it) with `From<&Config>` for each config; each config's engine
/// `RuleKernel` (that shader, that row); and `register`, which visits each config for
/// [`crate::for_each_rule`].
macro_rules! rule_kernel {
    (
        $(#[$doc:meta])*
        $shader:literal $(with $trust:ident)? for [$($config:ident),+] as $c:ident,
        uniform $uniform:ident = $wgsl:literal $fields:tt
    ) => {
        crate::kernels::abi::shared_struct! {
            $(#[$doc])*
            $uniform = $wgsl for $($config),+ as $c $fields
        }

        /// The rule's shaders, run on every access, addressing and state storage.
        pub(super) static SHADER: crate::kernels::shaders::RuleShader = crate::kernels::shaders::rule_shader!(
            $shader,
            $uniform,
            states: [$(<$config as crate::optim::RuleDeclaration>::STATES.len()),+][0]
            $(, $trust)?
        );

        $(
            impl crate::optim::engine::RuleKernel for $config {
                const SHADER: &'static crate::kernels::shaders::RuleShader = &SHADER;
                fn uniform(&self) -> Vec<u8> {
                    bytemuck::bytes_of(&$uniform::from(self)).to_vec()
                }
            }
        )+

        /// Registers the rule's configs ([`crate::for_each_rule`]).
        pub(super) fn register(visitor: &mut impl crate::optim::RuleVisitor) {
            $(visitor.visit::<$config>();)+
        }
    };
}
pub(crate) use rule_kernel;

/// Declares an optimizer type over the engine with rule `$config`, implementing
/// [`Optimizer`] by delegation.
macro_rules! optimizer {
    ($(#[$doc:meta])* $name:ident($config:ty)) => {
        $(#[$doc])*
        pub struct $name(crate::optim::engine::Engine<$config>);

        impl $name {
            /// An optimizer for `params` with zeroed state, one parameter group of every
            /// tensor; `config` is checked with PyTorch's rules
            /// ([`crate::Error::InvalidHyperparameter`]).
            pub fn new(params: &crate::storage::param_set::ParamSet, config: $config) -> crate::error::Result<Self> {
                let names = params.tensors().iter().map(|t| t.name.clone());
                Self::with_groups(params, vec![crate::optim::ParamGroup::new(names, config)])
            }

            /// An optimizer with parameter groups (PyTorch's `param_groups`): every tensor
            /// in exactly one group, each group's config checked with PyTorch's rules
            /// ([`crate::Error::InvalidGroups`] otherwise). Groups may differ in options
            /// that add a state (amsgrad, momentum, centered): such a state is kept for
            /// the tensors of the groups that use it only.
            pub fn with_groups(
                params: &crate::storage::param_set::ParamSet,
                groups: Vec<crate::optim::ParamGroup<$config>>,
            ) -> crate::error::Result<Self> {
                Self::with_state_dtype(params, groups, crate::dtype::Dtype::F32)
            }

            /// [`Self::with_groups`] keeping the optimizer's states in `state_dtype`: f32, or
            /// for Adam, AdamW, NAdam and RAdam bf16 (half the state memory; each write rounded
            /// stochastically, the random bits of state k of element e at step t being
            /// `reference::rounding_bits(seed ^ 0x9e3779b9·(k+1), t, e)` with the step's
            /// rounding seed, 0 under nearest-even rounding). Other rules and f16 states are
            /// [`crate::Error::NotSupported`]; bf16 states need a GPU.
            pub fn with_state_dtype(
                params: &crate::storage::param_set::ParamSet,
                groups: Vec<crate::optim::ParamGroup<$config>>,
                state_dtype: crate::dtype::Dtype,
            ) -> crate::error::Result<Self> {
                crate::optim::engine::Engine::new(params, groups, state_dtype).map($name)
            }

            /// The hyperparameters of the first parameter group.
            pub fn config(&self) -> &$config {
                &self.0.groups[0].config
            }

            /// The parameter groups (PyTorch's `param_groups`).
            pub fn param_groups(&self) -> &[crate::optim::ParamGroup<$config>] {
                &self.0.groups
            }
        }

        impl crate::optim::Optimizer for $name {
            fn step(
                &mut self,
                params: &mut crate::storage::param_set::ParamSet,
                options: &crate::optim::StepOptions,
            ) -> crate::error::Result<crate::report::Report> {
                self.0.step(params, options)
            }
            fn encode_step(
                &mut self,
                encoder: &mut wgpu::CommandEncoder,
                params: &mut crate::storage::param_set::ParamSet,
                options: &crate::optim::StepOptions,
            ) -> crate::error::Result<crate::report::Report> {
                self.0.encode_step(encoder, params, options)
            }
            fn norm_partial(
                &self,
                params: &mut crate::storage::param_set::ParamSet,
                norm: crate::options::Norm,
                nonfinite: crate::options::Nonfinite,
                rank: usize,
            ) -> crate::error::Result<crate::shard::ShardPartial> {
                self.0.norm_partial(params, norm, nonfinite, rank)
            }
            fn learning_rate(&self) -> f64 {
                self.0.groups[0].config.lr
            }
            fn set_learning_rate(&mut self, lr: f64) -> crate::error::Result<()> {
                let name = <$config as crate::optim::RuleDeclaration>::NAME;
                crate::optim::check_non_negative(name, "lr", lr)?;
                self.0.groups.iter_mut().for_each(|g| g.config.lr = lr);
                Ok(())
            }
            fn groups(&mut self) -> crate::optim::GroupRates<'_> {
                crate::optim::GroupRates { ops: &mut self.0 }
            }
            fn states(&self) -> crate::optim::States<'_> {
                crate::optim::States { ops: &self.0 }
            }
            fn checkpoint(&mut self) -> crate::optim::CheckpointIo<'_> {
                crate::optim::CheckpointIo { ops: &mut self.0 }
            }
            fn loss_scaling(&mut self) -> crate::optim::LossScaling<'_> {
                crate::optim::LossScaling { ops: &mut self.0 }
            }
        }

        impl crate::optim::engine::LearningRate for $config {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn set_lr(&mut self, lr: f64) {
                self.lr = lr;
            }
        }
    };
}
pub(crate) use optimizer;
