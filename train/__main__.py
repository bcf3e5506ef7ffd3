from train.cli.main import main

main()
