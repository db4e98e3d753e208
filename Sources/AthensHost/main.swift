print("athens")
