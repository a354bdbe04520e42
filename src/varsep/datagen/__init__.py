"""Writing data sets: simulators and preparation of raw downloads (``varsep generate`` / ``varsep prepare``).

- :mod:`varsep.datagen.waveeq` — the WaveEq PDE solver and the folder it writes;
- :mod:`varsep.datagen.mmnist` — the deterministic Moving MNIST test set;
- :mod:`varsep.datagen.sst` — SST zone files cut from raw Copernicus NetCDF.

(The Chairs renders are preprocessed into a cache by varsep.data.chairs.archive, both when the data set is
first opened and by ``varsep prepare chairs``.) Reading is varsep.data's job; each module here says which
reader takes its output.
"""
