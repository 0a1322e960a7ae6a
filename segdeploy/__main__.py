from segdeploy.cli.main import main

main()
