from flowprep.cli.launch import twostream

twostream()
