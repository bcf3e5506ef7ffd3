from flowprep.cli.launch import flowprep

flowprep()
