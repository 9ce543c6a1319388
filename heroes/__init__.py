"""heroes: superhero image classification with transfer learning, VGG vs ResNet, done honestly."""

__version__ = "0.1.0"
