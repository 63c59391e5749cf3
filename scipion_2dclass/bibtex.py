"""
@Misc{twodclass2026,
  author = {{twodclass developers}},
  title = {twodclass: fast open maximum-likelihood 2D classification for cryo-EM},
  year = {2026},
  note = {Online-EM 2D classification with CTF-aware Wiener class averages and
          polar-Fourier pose search, numba engine},
  url = {https://github.com/twodclass/twodclass}
}

@Article{Scheres2012,
  author = {Scheres, Sjors H. W.},
  title = {RELION: Implementation of a Bayesian approach to cryo-EM structure determination},
  journal = {Journal of Structural Biology},
  year = {2012},
  volume = {180},
  number = {3},
  pages = {519--530},
  doi = {10.1016/j.jsb.2012.09.006}
}

@Article{Punjani2017,
  author = {Punjani, Ali and Rubinstein, John L. and Fleet, David J. and Brubaker, Marcus A.},
  title = {cryoSPARC: algorithms for rapid unsupervised cryo-EM structure determination},
  journal = {Nature Methods},
  year = {2017},
  volume = {14},
  number = {3},
  pages = {290--296},
  doi = {10.1038/nmeth.4169}
}
"""
