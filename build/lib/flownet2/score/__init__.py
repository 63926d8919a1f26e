"""EPE and the other metrics, the postprocess report, the chain of custody, pictures."""
