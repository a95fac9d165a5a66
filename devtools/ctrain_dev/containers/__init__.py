"""Container tooling: the project's Docker engine, locally made base images, the ctrain
image, kind and its node image. Development tooling only; nothing here ships in the image."""
