from mmtrain.cli import main

main()
