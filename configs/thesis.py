"""The thesis code's experiment config, key for key (docs/thesis_mapping.md maps every name).

Its defaults: Fashion-MNIST at 32x32, the vanilla descriptor (n_f 64, leak 0.2), K = 100
noiseless SGD steps of size 1 on the samples (minimizer 'sgd', sgd_beta 0, with_noise 'no'),
data_epsilon 0.03, Adam lr 1e-4 (beta1 0.9 for uniform starts, 0.5 for generator starts),
batch 100, 10,000 iterations, 10,000 test samples. The variant picks the chain init, as the
thesis's 'init' key: uniform (default) | gaussian | data | persistent | generator.
"""

from configs import default

VARIANTS = ("gaussian", "data", "persistent", "generator")   # besides the default


def get_config(variant="uniform"):
  c = default.get_config()
  if variant not in ("uniform", "gaussian", "data", "persistent", "generator"):
    raise ValueError(f"configs/thesis.py: unknown init {variant!r}")
  c.seed = 123
  c.data.name = "fashion_mnist"          # data
  c.data.image_size = 32                 # img_size
  c.data.noise_std = 0.03                # data_epsilon
  c.model.name = "vanilla"               # the thesis code's Descriptor
  c.model.n_f = 64                       # n_f
  c.model.leak = 0.2                     # leak
  c.model.spectral_norm = False          # spec_norm 'no'
  c.sampler.name = "momentum_sgd"        # minimizer 'sgd'
  c.sampler.momentum = 0.0               # sgd_beta
  c.sampler.num_steps = 100              # langevin_step_num_des
  c.sampler.step_size = 1.0              # langevin_step_size_des
  c.sampler.noise_std = 0.0              # with_noise 'no' (1e-2 when 'yes')
  c.sampler.noise_divide = 1.0           # noise_divide
  c.init.name = variant                  # init
  c.objective.name = "coopnets" if variant == "generator" else "ml"   # CoopNets with a generator
  c.init.bank_size = 500000              # the persistent bank s_t_0
  c.init.start_noise_std = 0.03          # data_epsilon on persistent starts
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4       # lr_des
  c.optimizer.beta1 = 0.5 if variant == "generator" else 0.9   # beta1_des
  c.optimizer.l2_penalty = 0.0           # weight_decay (torch Adam's: L2 added to the gradient)
  c.optimizer.lr_decay = 1.0             # lr_decrease 'no' (0.999 when 'yes')
  c.loss.l2_energy = 0.0                 # l2_energy_reg
  c.generator.z_dim = 100                # z_size
  c.generator.n_f = 64                   # the code's generator: 256 / 128 / 64 channels
  c.generator.sigma = 0.3                # sigma_gen
  c.generator.langevin_steps = 0         # langevin_step_num_gen
  c.generator.learning_rate = 1e-4       # lr_gen
  c.generator.beta1 = 0.5                # beta1_gen
  c.batch_size = 100                     # batch_size
  c.num_train_steps = 10000              # num_iter
  c.num_final_samples = 10000            # test_size
  c.log_every_steps = 200
  c.checkpoint_every_steps = 1000
  c.divergence_threshold = 1e11          # the code stops when |des_loss| > 1e11
  return c
