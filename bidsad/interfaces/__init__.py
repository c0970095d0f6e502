"""nipype interfaces around nibabel / nilearn steps, one module per topic."""
