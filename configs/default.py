"""Every config key, with its default and a one-line comment. Recipes override it.

Keys named in DESIGN.md section 4 are public (users' scripts and sweeps use them); keep them.
Override any key on the command line: ``--config.sampler.num_steps=60``.
"""

import ml_collections


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0                          # PRNG seed of initialisation, data draws and chains
  c.num_train_steps = 2000            # parameter updates of the energy model
  c.batch_size = 100                  # data images and chains per update
  c.log_every_steps = 50              # metrics.jsonl row, image grids and plots every N steps
  c.checkpoint_every_steps = 500      # Orbax checkpoint every N steps (and at the end)
  c.keep_checkpoints = 3              # how many recent checkpoints to keep
  c.divergence_threshold = 0.0        # stop when |loss| exceeds this (0 = only non-finite; thesis 1e11)
  c.checkpoint_dir = ""               # "" = <workdir>/checkpoints; or e.g. gs://bucket/run/checkpoints
  c.num_final_samples = 1000          # samples written to samples.npz at the end
  c.num_grid_images = 64              # images per PNG grid

  c.data = ml_collections.ConfigDict()
  c.data.name = "mnist"               # mnist | fashion_mnist | cifar10 | gmm | rings
  c.data.dir = ""                     # raw dataset files; "" = $EBM_DATA_DIR or ~/.cache/ebm_jax/data
  c.data.image_size = 32              # 32 (bilinear resize from 28, as ebm-anatomy) or 28 (native)
  c.data.noise_std = 0.0              # data epsilon: Gaussian noise added to every data batch
  c.data.classes = ()                 # keep only these class labels, e.g. (3,) or (0, 1); () = all
  c.data.toy_sd = 0.15                # toy densities: sd of each GMM mode / ring width
  c.data.toy_radius = 1.0             # toy densities: GMM radius / spacing of the rings

  c.model = ml_collections.ConfigDict()
  c.model.name = "vanilla"            # toy_mlp | vanilla | nonlocal | thesis
  c.model.n_f = 32                    # base number of filters / hidden units
  c.model.leak = 0.05                 # leaky-ReLU slope (anatomy 0.05, short-run 0.2)
  c.model.spectral_norm = False       # spectral normalisation of every conv / dense layer
  c.model.conv_impl = "auto"          # auto | xla | patches (im2col; auto = patches on CPU)
  c.model.compute_dtype = "float32"   # float32 | bfloat16 (network math; params stay float32)

  c.sampler = ml_collections.ConfigDict()
  c.sampler.name = "langevin"         # langevin | gradient_descent | momentum_sgd | adam | mala | hmc
  c.sampler.num_steps = 20            # K: sampler steps per parameter update
  c.sampler.step_size = 1.0           # gradient multiplier (anatomy: 1 on its scaled energy)
  c.sampler.noise_std = 0.01          # noise sd per step (0 = noiseless; thesis with_noise: 1e-2)
  c.sampler.noise_divide = 1.0        # divide the noise *variance* by this (thesis noise_divide)
  c.sampler.clip_x = False            # clip chain positions to the data range [-1, 1] each step
  c.sampler.max_grad_norm = 0.0       # clip each sample's energy-gradient norm (0 = off)
  c.sampler.momentum = 0.9            # momentum_sgd: thesis's sgd_beta (m = b m + (1-b) g)
  c.sampler.adam_beta1 = 0.5          # adam sampler: beta1 (thesis default 0.5)
  c.sampler.adam_beta2 = 0.999        # adam sampler: beta2 (thesis default 0.999)
  c.sampler.hmc_leapfrog_steps = 5    # hmc: leapfrog steps per proposal
  c.sampler.unroll = 1                # lax.scan unroll of the chain (0 = fully; CPU speed knob)

  c.init = ml_collections.ConfigDict()
  c.init.name = "uniform"             # uniform | gaussian | data | persistent | replay | generator
  c.init.scale = 1.0                  # noise starts and bank / buffer init: uniform half-width or gaussian sd
  c.init.start_noise_std = 0.0        # noise sd added to data / bank / buffer starts (thesis: data_epsilon)
  c.init.bank_size = 10000            # persistent bank / replay buffer size (anatomy: one per image)
  c.init.reinit_prob = 0.05           # replay: probability a start is fresh noise
  c.init.bank_dtype = "float32"       # bank storage: float32 | bfloat16 (halves its memory)

  c.generator = ml_collections.ConfigDict()   # CoopNets, used with init.name = "generator"
  c.generator.z_dim = 50              # latent dimension (thesis code: z_size 100)
  c.generator.n_f = 128               # width: 4 n_f, 2 n_f, n_f channels (512/256/128)
  c.generator.leak = 0.01             # leaky-ReLU slope (torch's default, as the thesis code)
  c.generator.sigma = 0.3             # sigma_gen of the generator loss and of G1
  c.generator.langevin_steps = 0      # G1: Langevin steps on z (thesis langevin_step_num_gen: 0)
  c.generator.langevin_step_size = 0.1  # G1: delta (langevin_step_size_gen; CoopNets: 0.1)
  c.generator.langevin_noise = False  # G1: add delta * noise (thesis: with_noise)
  c.generator.learning_rate = 1e-4    # generator Adam lr (thesis lr_gen)
  c.generator.beta1 = 0.5             # generator Adam beta1 (thesis beta1_gen)
  c.generator.beta2 = 0.999           # generator Adam beta2

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"           # sgd | adam
  c.optimizer.learning_rate = 1e-4    # initial learning rate
  c.optimizer.lr_min = 0.0            # floor of the exponential decay
  c.optimizer.lr_decay = 1.0          # multiply the learning rate by this every step (1 = constant)
  c.optimizer.beta1 = 0.9             # adam beta1 (sgd: momentum, 0 = plain SGD as anatomy)
  c.optimizer.beta2 = 0.999           # adam beta2
  c.optimizer.weight_decay = 0.0      # decoupled weight decay (optax.add_decayed_weights)
  c.optimizer.grad_clip = 0.0         # clip the parameter gradient's global norm (0 = off)

  c.longrun = ml_collections.ConfigDict()
  c.longrun.every_steps = 0           # long-run chains every N updates (0 = off)
  c.longrun.num_steps = 2000          # sampler steps per long run (ebm-anatomy: 100,000)
  c.longrun.init = "data"             # uniform | gaussian | data | persistent | replay (anatomy: data)
  c.longrun.num_chains = 64           # chains per long run

  c.diagnostics = ml_collections.ConfigDict()
  c.diagnostics.figures_every_secs = 60  # refresh the plots/ figures at most this often (and at the end)
  c.diagnostics.window = 2000         # recent steps in the d_s_t / r_t correlations (anatomy: 2000)
  c.diagnostics.max_lag = 15          # largest lag of the correlation plots (anatomy: 15)
  c.diagnostics.landscape_every_steps = 500  # toy densities: landscape figure + KL every N steps
  c.diagnostics.landscape_res = 200   # grid points per axis of the toy landscape
  c.diagnostics.kde_bandwidth = 0.1   # toy KDE bandwidth factor (anatomy: 0.1 gmm, 0.075 rings)
  c.diagnostics.kde_samples = 2000    # short-run samples in the toy KDE (anatomy: 10,000)

  c.eval = ml_collections.ConfigDict()
  c.eval.at_end = False               # image runs: score samples.npz (classifier FID/KID/IS/coverage)
  c.eval.every_steps = 0              # image runs: also score num_final_samples every N steps (0 = off)

  c.parallel = ml_collections.ConfigDict()
  c.parallel.num_devices = 0          # devices of the data-parallel mesh (0 = every device, all hosts)
  c.parallel.cpu_devices = 0          # CPU only: split the host into N XLA devices (train.py, before jax starts)
  c.parallel.distributed = "auto"     # jax.distributed.initialize(): auto (multi-host launchers) | on | off

  c.loss = ml_collections.ConfigDict()
  c.loss.scale = 1.0                  # loss multiplier (anatomy: 2 / eps^2 with step_size 1)
  c.loss.l2_energy = 0.0              # alpha of alpha * (E(data)^2 + E(samples)^2)
  return c
