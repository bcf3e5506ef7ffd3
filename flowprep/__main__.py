from flowprep.cli.main import main

main()
